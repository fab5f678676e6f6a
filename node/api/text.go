package api

import "unicode/utf8"

// MaxTextBytes is the longest message text Send accepts, in bytes of UTF-8.
// It is a round number below what the device's outbox holds (64 KiB
// including the message's own header), so that every message Send accepts
// is also one the device can store and every member can receive.
const MaxTextBytes = 60000

// CheckText reports why text cannot be sent as a message, or nil: it must
// be non-empty UTF-8 of at most MaxTextBytes. Clients may call it before
// Send to fail early; Send calls it in any case.
func CheckText(text string) error {
	switch {
	case text == "":
		return Errorf(CodeInvalidArgument, "empty message")
	case len(text) > MaxTextBytes:
		return Errorf(CodeInvalidArgument, "message of %d bytes is longer than the limit of %d bytes", len(text), MaxTextBytes)
	case !utf8.ValidString(text):
		return Errorf(CodeInvalidArgument, "message is not UTF-8 text (send text, not binary data)")
	}
	return nil
}
