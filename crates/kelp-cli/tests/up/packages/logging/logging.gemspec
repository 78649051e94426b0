# A stand-in for the `logging` gem that Kubeless's Ruby example with a dependency uses: the gem
# registry is not reachable from the test machines, so the test installs this one from its path.
Gem::Specification.new do |s|
  s.name = 'logging'
  s.version = '2.3.0'
  s.summary = "A stand-in for the logging gem: Logging.logger(io) and its info"
  s.authors = ['Kelp']
  s.files = ['lib/logging.rb']
end
