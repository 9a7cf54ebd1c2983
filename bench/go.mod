module github.com/pulsehooks/pulsehooks/bench

go 1.26.0

require (
	github.com/pulsehooks/pulsehooks/pkg v0.0.0
	github.com/pulsehooks/pulsehooks/proto v0.0.0
)

replace (
	github.com/pulsehooks/pulsehooks/pkg => ../pkg
	github.com/pulsehooks/pulsehooks/proto => ../proto
)
