# A module that fails to load (a syntax error), for the load-failure case.

def hello(event, context
  'hello'
end
