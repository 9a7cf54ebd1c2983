package config

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by errors for objects that do not exist, or that
// belong to another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by errors for objects that already exist, or that
// changed concurrently too often to update.
var ErrConflict = errors.New("conflict")

// ErrUnauthorized is wrapped by errors for missing, malformed or revoked
// credentials.
var ErrUnauthorized = errors.New("unauthorized")

// ValidationError says which field of an input is invalid and why.
type ValidationError struct {
	// Field is the JSON name of the field, such as "url" or "headers.Host".
	Field string
	// Message says what is wrong, for a person to read.
	Message string
}

// Error returns "field: message".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// invalid returns a *ValidationError with a formatted message.
func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// notFound returns an error wrapping ErrNotFound that names the object.
func notFound(kind, id string) error {
	return fmt.Errorf("%s %q %w", kind, id, ErrNotFound)
}
