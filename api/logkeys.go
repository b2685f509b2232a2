package api

// Keys of the API's log records, named once.
const (
	logRequestID  = "request_id"
	logMethod     = "method"
	logRoute      = "route"
	logPath       = "path"
	logStatus     = "status"
	logBytes      = "bytes"
	logDurationMS = "duration_ms"
	logErr        = "err"
	logCode       = "code"
	logField      = "field"
)
