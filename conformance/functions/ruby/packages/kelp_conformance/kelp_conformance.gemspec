Gem::Specification.new do |s|
  s.name = 'kelp_conformance'
  s.version = '1.0.0'
  s.summary = 'A gem of the conformance suite, installed from its path'
  s.authors = ['Kelp']
  s.files = ['lib/kelp_conformance.rb']
end
