# The conformance suite's dependency: `withdeps.check` returns what `ok` says.
module KelpConformance
  def self.ok
    'deps ok'
  end
end
