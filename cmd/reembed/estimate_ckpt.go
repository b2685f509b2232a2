package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/planner"
)

// estimateCheckpoint is the checkpoint `estimate --checkpoint` prices against:
// only the chunks it lacks are priced, with the model, chunking and corpus it
// records (issue 14.6: the estimate prices the rebuild that would run).
type estimateCheckpoint struct {
	loc      storeLocation
	manifest *checkpoint.Manifest // nil: no manifest yet
	done     func(string, int, []byte) bool
	match    func() planner.DocIDMatch
	close    func() error
}

// openEstimateCheckpoint reads the checkpoint's manifest and keys.
func openEstimateCheckpoint(ctx context.Context, raw string) (*estimateCheckpoint, error) {
	loc, err := parseStoreLocation("--checkpoint", raw)
	if err != nil {
		return nil, err
	}
	if err := loc.exists(); err != nil {
		return nil, usagef("--checkpoint %q: %v", raw, errors.Unwrap(err))
	}
	store, closeStore, err := loc.open(ctx)
	if err != nil {
		return nil, err
	}
	c := &estimateCheckpoint{loc: loc, close: closeStore}
	if c.manifest, err = readManifestIfAny(ctx, store); err != nil {
		closeStore()
		return nil, usagef("--checkpoint %q: %v", loc, err)
	}
	if c.done, c.match, err = planner.CheckpointDoneMatch(ctx, store); err != nil {
		closeStore()
		return nil, usagef("--checkpoint %q: %v", loc, err)
	}
	return c, nil
}

// adopt makes the estimate use what the manifest records where no flag says
// otherwise, and refuses flags that contradict it, as rebuild does.
func (c *estimateCheckpoint) adopt(models *stringList, cf *corpusFlags, given map[string]bool) error {
	m := c.manifest
	if m == nil {
		return nil
	}
	refuse := func(flag, want, have string) error {
		return usagef("%s %s: the checkpoint %q holds %s, and a rebuild into it with another would be refused; give the checkpoint's, or price a new rebuild without --checkpoint",
			flag, want, c.loc, have)
	}
	switch {
	case len(*models) == 0:
		*models = stringList{m.Model}
	case len(*models) != 1 || (*models)[0] != m.Model:
		return refuse("--model", models.String(), m.Model+" vectors")
	}
	ch := m.Chunking
	if !given["chunk-tokens"] && !given["chunk-overlap"] {
		cf.chunkTokens, cf.chunkOverlap = ch.ChunkTokens, ch.ChunkOverlap
	} else if cf.chunkTokens != ch.ChunkTokens || cf.chunkOverlap != ch.ChunkOverlap {
		return refuse("--chunk-tokens/--chunk-overlap", fmt.Sprintf("%d/%d", cf.chunkTokens, cf.chunkOverlap), "chunks cut with "+ch.String())
	}
	if !given["plain-text"] {
		cf.plainText = m.PlainText
	} else if cf.plainText != m.PlainText {
		return refuse("--plain-text", fmt.Sprint(cf.plainText), fmt.Sprintf("chunks read with plain_text %v", m.PlainText))
	}
	return nil
}
