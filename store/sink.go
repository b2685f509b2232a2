package store

import (
	"context"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// Target describes what a restore loads: the vectors' shape and where they go.
type Target struct {
	// Model is the embedding model of every row.
	Model string
	// Dimensions is the length of every vector.
	Dimensions int
	// Metric is the distance the index is built for: "cosine", "l2" or "ip".
	Metric string
	// CheckpointID identifies the checkpoint, so that a ledger tells its parts
	// apart from another checkpoint's parts of the same name.
	CheckpointID string
}

// Part is one checkpoint part's winning rows, loaded as one unit.
type Part struct {
	// ID is the part's identity in the ledger: the checkpoint ID and part name.
	ID string
	// Rows are the rows to load; none repeats a key.
	Rows []checkpoint.Row
}

// IndexOptions says which index to build after the load.
type IndexOptions struct {
	// Kind is "hnsw" (default), "ivfflat" or "none".
	Kind string
	// M and EfConstruction are the HNSW parameters; 0 means pgvector's defaults (16, 64).
	M, EfConstruction int
	// Lists is the IVFFlat list count; 0 means rows/1000 (sqrt(rows) above 1M rows).
	Lists int
	// MaintenanceWorkMem is the session's maintenance_work_mem in bytes; 0 keeps the server's.
	MaintenanceWorkMem int64
	// MaxIndexMemory lets the build raise maintenance_work_mem up to this many
	// bytes when the estimated graph does not fit; 0 only warns.
	MaxIndexMemory int64
	// ParallelWorkers is max_parallel_maintenance_workers; -1 keeps the server's.
	ParallelWorkers int
}

// Progress is a restore's progress, reported as it goes.
type Progress struct {
	// Phase is "load", "index" or "swap".
	Phase string `json:"phase"`
	// PartsDone and PartsTotal count parts loaded (skipped ones included).
	PartsDone  int `json:"parts_done"`
	PartsTotal int `json:"parts_total"`
	// Rows is the rows loaded by this run.
	Rows int64 `json:"rows"`
	// IndexPhase is the server's phase of the index build (pg_stat_progress_create_index).
	IndexPhase string `json:"index_phase,omitempty"`
	// TuplesDone and TuplesTotal are the index build's tuple counts, when known.
	TuplesDone  int64 `json:"tuples_done,omitempty"`
	TuplesTotal int64 `json:"tuples_total,omitempty"`
	// Elapsed is the time since the restore started.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Sink is a vector store a checkpoint can be restored into. A Sink is used
// by one restore at a time and need not be safe for concurrent use.
type Sink interface {
	// Prepare creates the target or checks an existing one (refusing a
	// mismatch with an error that says what differs), and returns the IDs of
	// the parts already loaded by earlier runs.
	Prepare(ctx context.Context, t Target) (loaded map[string]bool, err error)
	// LoadPart loads a part and records it as loaded, in one transaction: after
	// a crash either both happened or neither did.
	LoadPart(ctx context.Context, p Part) error
	// BuildIndex builds the vector index after the load (a no-op when the
	// target already has one), reporting progress.
	BuildIndex(ctx context.Context, opts IndexOptions, progress func(Progress)) error
	// Publish makes the loaded data visible to queries (e.g. swaps a freshly
	// loaded table in, atomically).
	Publish(ctx context.Context) error
}

// Reader is what [Verify] needs of a live store.
type Reader interface {
	// Keys calls fn for every stored row's key and chunk_sha256.
	Keys(ctx context.Context, fn func(k checkpoint.Key, sha256 string) error) error
	// Vectors returns the stored vectors of keys (absent keys are left out).
	Vectors(ctx context.Context, keys []checkpoint.Key) (map[checkpoint.Key][]float32, error)
	// Nearest returns the key of the stored row nearest to v by the index's metric.
	Nearest(ctx context.Context, v []float32) (checkpoint.Key, error)
}
