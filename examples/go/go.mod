module github.com/pulsehooks/pulsehooks/examples/go

go 1.26.0

require github.com/pulsehooks/pulsehooks/pkg v0.0.0

replace (
	github.com/pulsehooks/pulsehooks/pkg => ../../pkg
	github.com/pulsehooks/pulsehooks/proto => ../../proto
)
