package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
)

// decodeBody decodes the JSON request body into v strictly: one JSON object,
// no unknown fields, right types. An empty body decodes as {} when
// emptyOK. Errors are *Error naming the field.
func decodeBody(c echo.Context, v any, emptyOK bool) error {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "request body is larger than the server accepts", err: err}
		}
		return badRequest(CodeInvalidJSON, "", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return badRequest(CodeMissing, "", "a JSON object body is required")
	}
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType, Field: "Content-Type",
				Message: "send the body as application/json"}
		}
	} else {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType, Field: "Content-Type",
			Message: "set Content-Type: application/json"}
	}
	if err := checkKeys(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest(CodeInvalidJSON, "", "the body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest(CodeInvalidJSON, "", "unexpected data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into an *Error naming the field.
func jsonError(err error) error {
	if _, ok := errors.AsType[*planner.FieldError](err); ok {
		return err // a type's own decoding (jobs.Spec): toAPIError answers it
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			return badRequest(CodeInvalidJSON, "", "the body must be a JSON object")
		}
		return badRequest(CodeInvalidType, field, "%s must be a JSON %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest(CodeInvalidJSON, "", "malformed JSON at byte %d: %v", se.Offset, se)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return badRequest(CodeUnknownField, name, "unknown field %q (see openapi.yaml)", name)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest(CodeInvalidJSON, "", "the JSON body ends early")
	}
	return badRequest(CodeInvalidJSON, "", "malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "int", "int32", "int64", "float64", "uint", "uint64":
		return "number"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return k
}

// parseStringOrList reads a JSON string or array of strings (e.g. "model").
func parseStringOrList(field string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest(CodeInvalidType, field, "%s must be a string or an array of strings", field)
	}
	return many, nil
}

// parseDuration reads an optional duration field (jobs.ParseDuration);
// given is false when it is absent.
func parseDuration(field string, s *string) (d time.Duration, given bool, err error) {
	if s == nil {
		return 0, false, nil
	}
	jd, err := jobs.ParseDuration(field, *s)
	return jd.D(), true, err
}

// nonNegative checks integer fields; the first negative one is the error.
func nonNegative(fields ...struct {
	name string
	v    int64
}) error {
	for _, f := range fields {
		if f.v < 0 {
			return badRequest(CodeInvalidValue, f.name, "%s must not be negative", f.name)
		}
	}
	return nil
}

type namedInt = struct {
	name string
	v    int64
}

// intOr returns *p, or def when p is nil.
func intOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// durationMS converts milliseconds to a Duration.
func durationMS(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
