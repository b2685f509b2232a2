package main

import (
	"context"
	"fmt"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/planner/jobs"
)

// jobBatchAPIs builds the Files and Batches client of each job run in mode
// batch or auto: the shared simulator's (served on loopback for the
// server's life, as rebuild --mode batch does for the simulated provider),
// or the configured OpenAI-compatible API's. stop closes the loopback
// server.
func jobBatchAPIs(ctx context.Context, sim *embedder.Simulator, openai openAIOptions) (factory jobs.BatchAPIFactory, stop func(), err error) {
	simURL, stopServer, err := serveLoopback(ctx, sim)
	if err != nil {
		return nil, nil, fmt.Errorf("serving the simulated batch api: %w", err)
	}
	factory = func(spec jobs.Spec) (planner.BatchAPI, error) {
		switch spec.Provider {
		case jobs.ProviderSimulated:
			return &embedder.BatchClient{BaseURL: simURL}, nil
		case jobs.ProviderOpenAI:
			if openai.baseURL == "" {
				break
			}
			return &embedder.BatchClient{BaseURL: openai.baseURL, APIKey: openai.key}, nil
		}
		return nil, fmt.Errorf("provider %q is not configured", spec.Provider)
	}
	return factory, stopServer, nil
}
