package jobs

// Keys of the manager's log records. Runbooks and tests search logs by
// them (e.g. job_id), so they are named once here.
const (
	logJobID         = "job_id"
	logErr           = "err"
	logState         = "state"
	logModel         = "model"
	logProvider      = "provider"
	logCause         = "cause"
	logBilledTokens  = "billed_tokens"
	logCostUSD       = "cost_usd"
	logCommitted     = "committed_chunks"
	logPanic         = "panic"
	logRun           = "run"
	logCheckpointDir = "checkpoint_dir"
	logMode          = "mode"
)
