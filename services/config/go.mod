module github.com/pulsehooks/pulsehooks/services/config

go 1.26

require (
	github.com/pulsehooks/pulsehooks/pkg v0.0.0
	github.com/pulsehooks/pulsehooks/proto v0.0.0
)

replace (
	github.com/pulsehooks/pulsehooks/pkg => ../../pkg
	github.com/pulsehooks/pulsehooks/proto => ../../proto
)
