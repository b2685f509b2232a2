// Package jobs is the service's durable job manager: rebuild jobs
// ([Manager], jobs/<id>/job.json) and restore jobs ([RestoreManager],
// restores/<id>/job.json) in the server's data directory, each file written
// atomically at every state change, so that a server killed mid-job resumes
// it on its next start. Managers own their runs' contexts, never a
// request's.
//
// It imports planner, checkpoint and store (the restore's Sink and Reader
// interfaces; the pgvector implementation is handed in by cmd/reembed).
package jobs
