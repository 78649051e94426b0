# Conformance functions for the Ruby runtime (module `conf`).
#
# Parallel to ../python/conf.py: same handlers, same behaviour. See conformance/README.md.
# Kubeless's Ruby event has symbol keys (`event[:data]`); the request is a Hash with string keys.

require 'base64'

def hello(event, context)
  'hello world'
end

def echo(event, context)
  out = event.reject { |k, _| k == :extensions }
  data = event[:data]
  out[:data_length] = nil
  if data.is_a?(String) && event[:extensions][:request]['headers']['content-type'].to_s !~ %r{^application/json}i
    out[:data_length] = data.bytesize
    unless data.valid_encoding?
      out[:data] = Base64.strict_encode64(data)
      out[:data_encoding] = 'base64'
    end
  end
  request = event[:extensions][:request]
  out[:request] = request
  out[:x_custom_header] = request.header('X-Custom-Header')
  out[:context] = context
  out
end

RETURNS = {
  'str' => -> { 'a string' },
  'bytes' => -> { "\x00\x01bytes\xff".b },
  'dict' => -> { { 'a' => 1, 'b' => [true, nil, 'x'] } },
  'list' => -> { [1, 'two', nil] },
  'none' => -> { nil },
  'number' => -> { 42 },
  'bool' => -> { true },
  'empty' => -> { '' },
  'false' => -> { false },
  'zero' => -> { 0 },
  'float' => -> { 1.5 },
  'unicode' => -> { "h\u00e9llo \u2713" }
}.freeze

def returns(event, context)
  RETURNS.fetch(event[:extensions][:request]['query']['t']).call
end

def status(event, context)
  Kelp::Response.new('created', status: 201, headers: { 'x-kelp' => 'yes' })
end

def framing(event, context)
  Kelp::Response.new('hello world', status: 200, headers: { 'content-length' => '5' })
end

def boom(event, context)
  raise 'kaboom'
end

def slow(event, context)
  sleep(Float(event[:extensions][:request]['query'].fetch('s', '0')))
  'slept'
end

def spin(event, context)
  loop {}
end

def die(event, context)
  exit!(3)
end

def env(event, context)
  ENV[event[:extensions][:request]['query']['name']]
end
