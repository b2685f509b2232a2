package storetest

import (
	"context"
	"fmt"

	"github.com/reembed/reembed/checkpoint"
)

// BenchText is the text of bench row i: 20 bytes, as the planner's what-if
// of 5 tokens per document counts it (4 bytes per token).
func BenchText(i int) string { return fmt.Sprintf("bench chunk %08d", i) }

// WriteBenchCheckpoint writes a checkpoint of rows distinct keys with
// dims-long vectors into dir, partRows rows per part, for benchmarks and
// scripts (scripts/bench-restore.sh, scripts/restore-prediction.sh).
func WriteBenchCheckpoint(ctx context.Context, dir string, rows, dims, partRows int) error {
	w, err := checkpoint.Open(ctx, checkpoint.NewDir(dir), checkpoint.Options{Manifest: checkpoint.Manifest{Model: Model, Dimensions: dims, Encoding: "cl100k_base"}, PartRows: partRows})
	if err != nil {
		return fmt.Errorf("opening the bench checkpoint: %w", err)
	}
	for i := range rows {
		if err := w.Add(ctx, NewRow(fmt.Sprintf("docs/doc-%06d.md", i/4), int32(i%4), BenchText(i), dims)); err != nil {
			return fmt.Errorf("adding bench row %d: %w", i, err)
		}
	}
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("closing the bench checkpoint: %w", err)
	}
	return nil
}
