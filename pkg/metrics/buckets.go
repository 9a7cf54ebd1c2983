package metrics

// AttemptBuckets returns the bucket bounds, in seconds, of attempt
// durations: 5 ms to the longest endpoint timeout, 30 s.
func AttemptBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30}
}

// EndToEndBuckets returns the bucket bounds, in seconds, of the time from an
// event's acceptance by ingest to an endpoint's 2xx: 5 ms to 10 minutes.
func EndToEndBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
}
