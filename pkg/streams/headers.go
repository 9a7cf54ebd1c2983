package streams

// RedoHeader marks a message that may repeat one stored before outside the
// stream's duplicate window: ingest sets it on an event it publishes again
// for a retried idempotency key, and fanout on the deliveries of an event
// it fans out again (redelivered, or marked by ingest). Delivery consults the
// Redis record of completed deliveries only for deliveries that can have
// been completed before: redelivered by JetStream, returned from the retry
// schedule, resent, or marked with this header. Its value is "1".
const RedoHeader = "Pulsehooks-Redo"
