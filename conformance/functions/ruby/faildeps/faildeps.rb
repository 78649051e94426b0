def check(event, context)
  'unreachable'
end
