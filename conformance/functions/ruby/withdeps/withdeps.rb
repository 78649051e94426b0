require 'kelp_conformance'

def check(event, context)
  KelpConformance.ok
end
