module function

go 1.14

require github.com/kelp-conformance/kelp-no-such-package-0000 v0.0.1
