package api

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/pricing"
)

// Error codes of the API's error bodies. Runbooks branch on them; they are
// listed in openapi.yaml (schema Error).
const (
	CodeInvalidJSON          = "invalid_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidType          = "invalid_type"
	CodeInvalidValue         = "invalid_value"
	CodeMissing              = "missing"
	CodeConflict             = "conflicting_fields"
	CodeUnknownModel         = "unknown_model"
	CodeOutsideRoot          = "outside_corpus_root"
	CodePathNotFound         = "path_not_found"
	CodeUnreadableCorpus     = "unreadable_corpus"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnauthorized         = "unauthorized"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeJobActive            = "job_active"
	CodeJobFinished          = "job_finished"
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeShuttingDown         = "shutting_down"
	CodeInternal             = "internal"
)

// Error is an API error answer: Status with the body
// {"error":{"code","message","field"}}. Field names the request field
// (snake_case), header or path parameter at fault, or is empty. The wrapped
// cause is logged, never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
	err     error
}

// Error returns the code and message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// jsonField names a field of a [planner.FieldError] in an answer: the JSON
// field is the snake_case field itself.
func jsonField(field string) string { return field }

func badRequest(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps an error to its answer: an *Error as is, Echo's routing
// errors, then the sentinel errors of planner, corpus and pricing. It
// returns nil for anything else (an internal error).
func toAPIError(err error) *Error {
	if ae, ok := errors.AsType[*Error](err); ok {
		return ae
	}
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		switch he.Code {
		case http.StatusNotFound:
			return &Error{Status: he.Code, Code: CodeNotFound, Message: "no such route"}
		case http.StatusMethodNotAllowed:
			return &Error{Status: he.Code, Code: CodeMethodNotAllowed, Message: "method not allowed on this route (see the Allow header)"}
		case http.StatusRequestEntityTooLarge:
			return &Error{Status: he.Code, Code: CodeBodyTooLarge, Message: "request body too large"}
		case http.StatusUnauthorized:
			return &Error{Status: he.Code, Code: CodeUnauthorized, Message: "missing or wrong bearer token", Field: "Authorization"}
		}
		if he.Code >= 400 && he.Code < 500 {
			return &Error{Status: he.Code, Code: CodeInvalidValue, Message: http.StatusText(he.Code)}
		}
		return nil
	}
	if fe, ok := errors.AsType[*planner.FieldError](err); ok {
		code := CodeInvalidValue
		switch {
		case errors.Is(fe.Err, corpus.ErrOutsideRoot):
			code = CodeOutsideRoot
		case errors.Is(fe.Err, fs.ErrNotExist):
			code = CodePathNotFound
		case errors.Is(fe.Err, pricing.ErrUnknownModel):
			code = CodeUnknownModel
		case errors.Is(fe.Err, jobs.ErrMissing):
			code = CodeMissing
		case errors.Is(fe.Err, jobs.ErrConflict):
			code = CodeConflict
		case errors.Is(fe.Err, jobs.ErrType):
			code = CodeInvalidType
		}
		return &Error{Status: http.StatusBadRequest, Code: code, Field: fe.Field, Message: planner.RenderErrors(err, jsonField), err: err}
	}
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Field: "id", Message: "no rebuild job has this id", err: err}
	case errors.Is(err, jobs.ErrActive):
		return &Error{Status: http.StatusConflict, Code: CodeJobActive, Field: "id", Message: err.Error(), err: err}
	case errors.Is(err, jobs.ErrFinished):
		return &Error{Status: http.StatusConflict, Code: CodeJobFinished, Field: "id", Message: err.Error(), err: err}
	case errors.Is(err, jobs.ErrIdempotencyKeyReused):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used for a rebuild with a different body", err: err}
	case errors.Is(err, jobs.ErrShuttingDown):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown, Message: "the server is shutting down; retry on its next start", err: err}
	}
	return nil
}

// handleError is the Echo HTTPErrorHandler: every error answer goes through
// it, in one JSON shape. Internal errors answer 500 "internal" with the
// request id; the detail goes to the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := toAPIError(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if ae == nil {
		s.log.Error("internal error", logRequestID, rid, logMethod, c.Request().Method, logPath, c.Request().URL.Path, logErr, err)
		ae = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error; see the server log for request id " + rid}
	}
	if ae.Status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="reembed"`)
	}
	body := errorBody{Error: errorDetail{Code: ae.Code, Message: ae.Message, Field: ae.Field}}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(ae.Status)
	} else {
		werr = c.JSON(ae.Status, body)
	}
	if werr != nil {
		s.log.Warn("writing error response", logRequestID, rid, logErr, werr)
	}
	if ae.Status >= 500 {
		return
	}
	s.log.Debug("request refused", slog.String(logRequestID, rid), slog.String(logCode, ae.Code), slog.String(logField, ae.Field))
}
