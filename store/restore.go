package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/field"
)

// Options tunes [Restore].
type Options struct {
	// Metric is the index metric; "" means "cosine" (the OpenAI models' metric).
	Metric string
	// Index is the index to build after the load.
	Index IndexOptions
	// Progress, if set, receives progress after each part and during the index build.
	Progress func(Progress)
	// Logger receives one record per part; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Report is what a restore did.
type Report struct {
	// Parts is the number of readable parts of the checkpoint.
	Parts int `json:"parts"`
	// PartsLoaded is how many this run loaded; PartsSkipped were loaded before.
	PartsLoaded  int `json:"parts_loaded"`
	PartsSkipped int `json:"parts_skipped"`
	// Rows is the rows this run loaded; Keys the checkpoint's distinct keys.
	Rows int64 `json:"rows"`
	Keys int   `json:"keys"`
	// Unreadable is the number of checkpoint parts that could not be read (not loaded).
	Unreadable int `json:"unreadable_parts"`
	// LoadSeconds, IndexSeconds and PublishSeconds time the three phases.
	LoadSeconds    float64 `json:"load_seconds"`
	IndexSeconds   float64 `json:"index_seconds"`
	PublishSeconds float64 `json:"publish_seconds"`
}

// ErrUnreadableParts is returned (wrapped) when the checkpoint has parts that
// cannot be read: restoring would silently lose their rows.
var ErrUnreadableParts = errors.New("checkpoint has unreadable parts")

// CheckpointID returns a short identity of a checkpoint from its manifest:
// the parts of two checkpoints with the same names get different ledger IDs.
func CheckpointID(m checkpoint.Manifest) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%v", m.Model, m.Dimensions, m.CreatedAt.UTC().Format(time.RFC3339Nano), m.CorpusRoots)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Restore loads every winning row of the checkpoint in src into sink, part by
// part, skipping parts the sink already holds, then builds the index and
// publishes. m is the checkpoint's manifest (any shard's).
func Restore(ctx context.Context, src checkpoint.Store, m checkpoint.Manifest, sink Sink, opts Options) (Report, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	start := now()
	report := func(p Progress) {
		if opts.Progress != nil {
			p.Elapsed = now().Sub(start)
			opts.Progress(p)
		}
	}
	var rep Report
	ix, err := checkpoint.Scan(ctx, src, checkpoint.ScanOptions{Logger: logger})
	if err != nil {
		return rep, fmt.Errorf("reading the checkpoint: %w", err)
	}
	rep.Keys, rep.Unreadable = ix.Len(), len(ix.Unreadable())
	if rep.Unreadable > 0 {
		return rep, field.Errorf("%w: %d (first: %s); run rebuild with the same {out_dir} to re-embed their chunks", ErrUnreadableParts, rep.Unreadable, ix.Unreadable()[0].Name)
	}
	parts := ix.Parts()
	rep.Parts = len(parts)
	t, err := target(ctx, src, m, parts, opts.Metric)
	if err != nil {
		return rep, err
	}
	loaded, err := sink.Prepare(ctx, t)
	if err != nil {
		return rep, err
	}
	if err := loadParts(ctx, src, ix, t.CheckpointID, parts, loaded, sink, &rep, logger, func() {
		report(Progress{Phase: "load", PartsDone: rep.PartsLoaded + rep.PartsSkipped, PartsTotal: len(parts), Rows: rep.Rows})
	}); err != nil {
		return rep, err
	}
	loadEnd := now()
	rep.LoadSeconds = loadEnd.Sub(start).Seconds()
	err = sink.BuildIndex(ctx, opts.Index, func(p Progress) {
		p.Phase, p.PartsDone, p.PartsTotal, p.Rows = "index", len(parts), len(parts), rep.Rows
		report(p)
	})
	if err != nil {
		return rep, fmt.Errorf("building the index: %w", err)
	}
	indexEnd := now()
	rep.IndexSeconds = indexEnd.Sub(loadEnd).Seconds()
	report(Progress{Phase: "swap", PartsDone: len(parts), PartsTotal: len(parts), Rows: rep.Rows})
	if err := sink.Publish(ctx); err != nil {
		return rep, fmt.Errorf("publishing the loaded table: %w", err)
	}
	rep.PublishSeconds = now().Sub(indexEnd).Seconds()
	return rep, nil
}

// target fills a Target from the manifest; when it records no dimensions,
// the first row of the first part says.
func target(ctx context.Context, src checkpoint.Store, m checkpoint.Manifest, parts []checkpoint.PartInfo, metric string) (Target, error) {
	if metric == "" {
		metric = "cosine"
	}
	t := Target{Model: m.Model, Dimensions: m.Dimensions, Metric: metric, CheckpointID: CheckpointID(m)}
	if t.Dimensions > 0 || len(parts) == 0 {
		return t, nil
	}
	rows, err := readPart(ctx, src, parts[0].Name)
	if err != nil {
		return t, err
	}
	if len(rows) > 0 {
		t.Dimensions = len(rows[0].Embedding)
	}
	return t, nil
}

// readPart reads every row of a part.
func readPart(ctx context.Context, src checkpoint.Store, name string) ([]checkpoint.Row, error) {
	f, err := src.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("opening part %q: %w", name, err)
	}
	defer f.Close()
	rows, err := checkpoint.ReadRows(f, f.Size())
	if err != nil {
		return nil, fmt.Errorf("reading part %q: %w", name, err)
	}
	return rows, nil
}

// winningRows returns the rows of a part that win their key (see the
// checkpoint package): later parts' rows and later rows of the same part
// shadow earlier ones.
func winningRows(ctx context.Context, src checkpoint.Store, ix *checkpoint.Index, name string) ([]checkpoint.Row, error) {
	rows, err := readPart(ctx, src, name)
	if err != nil {
		return nil, err
	}
	seen := make(map[checkpoint.Key]bool, len(rows))
	keep := rows[:0:0]
	for i := len(rows) - 1; i >= 0; i-- {
		r := &rows[i]
		k := r.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if e, ok := ix.Lookup(k); ok && e.Part == name && e.SHA256 == r.ChunkSHA256 {
			keep = append(keep, *r)
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return keep, nil
}

// readyPart is a part read and filtered ahead of its load.
type readyPart struct {
	name string
	rows []checkpoint.Row
	err  error
}

// loadParts loads every part not yet loaded, reading the next part while the
// current one is being loaded (at most two parts in memory).
func loadParts(ctx context.Context, src checkpoint.Store, ix *checkpoint.Index, cpID string, parts []checkpoint.PartInfo,
	loaded map[string]bool, sink Sink, rep *Report, logger *slog.Logger, progress func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ahead := make(chan readyPart, 1)
	go func() {
		defer close(ahead)
		for _, p := range parts {
			r := readyPart{name: p.Name}
			if !loaded[cpID+"/"+p.Name] {
				r.rows, r.err = winningRows(ctx, src, ix, p.Name)
			}
			select {
			case ahead <- r:
			case <-ctx.Done():
				return
			}
			if r.err != nil {
				return
			}
		}
	}()
	for r := range ahead {
		id := cpID + "/" + r.name
		switch {
		case r.err != nil:
			return r.err
		case loaded[id]:
			rep.PartsSkipped++
		default:
			if err := sink.LoadPart(ctx, Part{ID: id, Rows: r.rows}); err != nil {
				return fmt.Errorf("loading part %q: %w", r.name, err)
			}
			rep.PartsLoaded++
			rep.Rows += int64(len(r.rows))
			logger.Debug("part loaded", "part", r.name, "rows", len(r.rows))
		}
		progress()
	}
	return ctx.Err()
}
