# Benchmark functions for bench/runtime.sh (Kubeless signature: handler(event, context)).

def hello(event, context)
  'hello world'
end

# For a JSON POST, data is the decoded object, so it is re-serialized as JSON.
def echo(event, context)
  event[:data]
end
