// Package bench is the pulsehooks benchmark harness. The work is done by its
// commands — cmd/bench (the orchestrator behind `make bench`), cmd/receiver,
// cmd/loadgen and cmd/natsd — and internal packages; this package holds only
// the end-to-end test that runs the harness on a tiny load. docs/BENCHMARKS.md
// explains the scenarios and how to read the results.
package bench
