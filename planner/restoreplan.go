package planner

import (
	"fmt"
	"math"
)

// RestoreTarget asks an estimate to count the restore into a vector store:
// load, index and verify join the embedding time in the duration and the RTO
// verdict (DESIGN §9).
type RestoreTarget struct {
	// Store is the kind of store: "pgvector".
	Store string `json:"store"`
	// Index is "hnsw" (default), "ivfflat" or "none".
	Index string `json:"index,omitempty"`
	// Dimensions overrides the model's default dimensions; 0 keeps them.
	Dimensions int `json:"dimensions,omitempty"`
	// Workers is max_parallel_maintenance_workers for the build, used in the
	// recommendations; 0 means the server default (2). The index term is
	// the build time at the parallelism it was measured with.
	Workers int `json:"workers,omitempty"`
	// Model is how fast the target loads and indexes; zero fields take
	// [DefaultRestoreModel]'s.
	Model RestoreModel `json:"model"`
}

// RestoreModel is how fast a store loads and indexes: measured on the target
// (`estimate --calibrate`), or documented defaults marked uncalibrated.
type RestoreModel struct {
	// LoadBytesPerSecond is the COPY throughput in bytes of vectors and row
	// overhead ([RestoreRowBytes]) per second.
	LoadBytesPerSecond float64 `json:"load_bytes_per_second"`
	// IndexA and IndexB are the index build's growth law at 1,536 dimensions,
	// at the parallelism it was measured with: seconds = IndexA × rows^IndexB,
	// scaled linearly with the dimensions (distance computations).
	IndexA float64 `json:"index_a"`
	IndexB float64 `json:"index_b"`
	// IndexMaxRows is the largest size the law was measured at; beyond it
	// the build grows as rows × log(rows) from there (see [IndexGrowth]).
	// 0 applies the power law at every size.
	IndexMaxRows int64 `json:"index_max_rows,omitempty"`
	// IVFFlatFactor is the IVFFlat build time as a share of the HNSW one.
	IVFFlatFactor float64 `json:"ivfflat_factor"`
	// VerifyRowsPerSecond is the key scan of verify --store.
	VerifyRowsPerSecond float64 `json:"verify_rows_per_second"`
	// Calibrated tells whether the figures were measured on the target.
	Calibrated bool `json:"calibrated"`
	// Basis says where the figures come from.
	Basis string `json:"basis"`
}

// DefaultRestoreModel holds the uncalibrated defaults, measured on the
// project's 2-core development machine with PostgreSQL 15 and pgvector 0.8.6
// (../shared/reference/vector-stores.md and issue 15): binary COPY of 50,000
// 1,536-d rows in 9.0 s (≈ 34 MB/s of vectors), an HNSW build (m = 16,
// ef_construction = 64) of 50,000 such rows in 48 s; the growth exponent 1.1
// (n log n over this range) and IVFFlat at 1/20 of HNSW ("30 hours for HNSW
// against 30 minutes for IVFFlat", pgvector issue 364, is 1/60) are published
// rules of thumb, not measurements of the target.
var DefaultRestoreModel = RestoreModel{
	LoadBytesPerSecond:  34e6,
	IndexA:              48 / math.Pow(50000, 1.1),
	IndexB:              1.1,
	IndexMaxRows:        50000,
	IVFFlatFactor:       0.05,
	VerifyRowsPerSecond: 200000,
	Basis:               "uncalibrated: defaults measured on a 2-core machine (PostgreSQL 15, pgvector 0.8.6); run estimate {calibrate} {restore_to} DSN on the target",
}

// RestoreRowBytes is the bytes one row costs the load: its vector plus the
// row's other columns and overhead (about 300 bytes for a chunk's key, hash,
// model and timestamp; the text adds its own length, which the estimate
// counts as 4 bytes per token).
func RestoreRowBytes(dims int, half bool) float64 {
	if half {
		return float64(2*dims) + 300
	}
	return float64(4*dims) + 300
}

// RestoreEstimate is the restore's share of an estimate.
type RestoreEstimate struct {
	Store         string  `json:"store"`
	Rows          int64   `json:"rows"`
	Dimensions    int     `json:"dimensions"`
	Index         string  `json:"index"`
	LoadSeconds   float64 `json:"load_seconds"`
	IndexSeconds  float64 `json:"index_seconds"`
	VerifySeconds float64 `json:"verify_seconds"`
	// EmbedSeconds is the embedding duration the restore adds to.
	EmbedSeconds float64 `json:"embed_seconds"`
	Calibrated   bool    `json:"calibrated"`
	Basis        string  `json:"basis"`
}

// Seconds is the restore's time: load + index + verify.
func (r RestoreEstimate) Seconds() float64 { return r.LoadSeconds + r.IndexSeconds + r.VerifySeconds }

// EstimateRestore predicts the load, index and verify time of rows vectors.
func EstimateRestore(rows, textBytes int64, dims int, t RestoreTarget) RestoreEstimate {
	m := t.Model.withDefaults()
	half := dims > 2000
	index := t.Index
	if index == "" {
		index = "hnsw"
	}
	r := RestoreEstimate{Store: t.Store, Rows: rows, Dimensions: dims, Index: index, Calibrated: m.Calibrated, Basis: m.Basis}
	r.LoadSeconds = (float64(rows)*RestoreRowBytes(dims, half) + float64(textBytes)) / m.LoadBytesPerSecond
	if rows > 0 && index != "none" {
		perDim := float64(dims) / 1536
		if half {
			perDim = float64(dims) / 2 / 1536 // binary16 distances read half the bytes
		}
		r.IndexSeconds = IndexGrowth(m.IndexA, m.IndexB, m.IndexMaxRows, rows) * perDim
		if index == "ivfflat" {
			r.IndexSeconds *= m.IVFFlatFactor
		}
	}
	r.VerifySeconds = float64(rows)/m.VerifyRowsPerSecond + 1
	return r
}

// IndexGrowth is the index build's seconds for rows: a × rows^b up to
// maxRows, the largest size the law was fitted on, and beyond it
// a × maxRows^b × (rows log rows) / (maxRows log maxRows). An HNSW insert
// costs a search of O(log rows) steps, so the build grows as rows × log rows
// once the graph has outgrown the CPU cache; the small samples a calibration
// can afford grow faster than that (measured here: rows^1.77 over 5,000 to
// 20,000 rows × 1,536-d, then rows^0.9 to 50,000 and rows^1.2 to 100,000),
// and extrapolating their power law 5× doubled the prediction.
func IndexGrowth(a, b float64, maxRows, rows int64) float64 {
	if maxRows <= 1 || rows <= maxRows {
		return a * math.Pow(float64(rows), b)
	}
	m, n := float64(maxRows), float64(rows)
	return a * math.Pow(m, b) * (n * math.Log(n)) / (m * math.Log(m))
}

func (m RestoreModel) withDefaults() RestoreModel {
	d := DefaultRestoreModel
	if m.LoadBytesPerSecond > 0 {
		d.LoadBytesPerSecond = m.LoadBytesPerSecond
	}
	if m.IndexA > 0 && m.IndexB > 0 {
		d.IndexA, d.IndexB, d.IndexMaxRows = m.IndexA, m.IndexB, m.IndexMaxRows
	}
	if m.IVFFlatFactor > 0 {
		d.IVFFlatFactor = m.IVFFlatFactor
	}
	if m.VerifyRowsPerSecond > 0 {
		d.VerifyRowsPerSecond = m.VerifyRowsPerSecond
	}
	if m.Calibrated {
		d.Calibrated, d.Basis = true, m.Basis
	}
	return d
}

// applyRestore adds the restore's terms to an estimate's duration, and says
// what would meet a missed RTO on the restore side. It does nothing without a
// restore target.
func applyRestore(me *ModelEstimate, req EstimateRequest, defaultDims int) {
	t := req.Restore
	if t == nil {
		return
	}
	dims := t.Dimensions
	if dims <= 0 {
		dims = defaultDims
	}
	rows := me.Chunks + me.ReusedChunks
	r := EstimateRestore(rows, 4*(me.Tokens+me.ReusedTokens), dims, *t)
	r.EmbedSeconds = me.DurationSeconds
	me.Restore = &r
	me.DurationSeconds += r.Seconds()
	me.Duration = formatDuration(me.DurationSeconds)
}

// recommendRestore says what would bring a restore within a missed RTO.
func recommendRestore(me ModelEstimate, req EstimateRequest) []string {
	r := me.Restore
	if r == nil || req.RTO <= 0 || me.MeetsRTO == nil || *me.MeetsRTO {
		return nil
	}
	var out []string
	rto := req.RTO.Seconds()
	if r.Index == "hnsw" && r.IndexSeconds > 0 {
		ivf := r.IndexSeconds * req.Restore.Model.withDefaults().IVFFlatFactor
		out = append(out, fmt.Sprintf("restore: IVFFlat instead of HNSW builds in about %s instead of %s (lower recall; rebuild HNSW later, CONCURRENTLY)",
			formatDuration(ivf), formatDuration(r.IndexSeconds)))
		workers := req.Restore.Workers
		if workers <= 0 {
			workers = 2
		}
		out = append(out, fmt.Sprintf("restore: more {parallel_workers} (now %d; each adds a process to the build) and {max_index_memory} large enough for the graph", workers))
	}
	if r.Seconds() > rto {
		out = append(out, fmt.Sprintf("restore: load, index and verify alone take %s, over the RTO: load only what changed (restore {append} of a delta checkpoint) instead of the whole table", formatDuration(r.Seconds())))
	} else {
		out = append(out, "restore: if the store kept most rows, load only what changed (restore {append} of a delta checkpoint)")
	}
	if !r.Calibrated {
		out = append(out, "restore: the load and index terms are uncalibrated: run estimate {calibrate} {restore_to} DSN against the target")
	}
	return out
}
