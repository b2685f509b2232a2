package api

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/planner"
	"github.com/reembed/reembed/pricing"
)

// estimateBody is the body of POST /v1/estimates: the flags of
// `reembed estimate` in snake_case. Pointers tell "absent" from zero.
type estimateBody struct {
	Model             json.RawMessage `json:"model"`
	ChunkTokens       *int            `json:"chunk_tokens"`
	ChunkOverlap      *int            `json:"chunk_overlap"`
	PlainText         bool            `json:"plain_text"`
	RPM               *int            `json:"rpm"`
	TPM               *int            `json:"tpm"`
	Concurrency       *int            `json:"concurrency"`
	Latency           *string         `json:"latency"`
	LatencyMS         *int64          `json:"latency_ms"`
	RTO               *string         `json:"rto"`
	BatchSize         int             `json:"batch_size"`
	Sample            *float64        `json:"sample"`
	Seed              *int64          `json:"seed"`
	Documents         *int64          `json:"documents"`
	TokensPerDocument *int64          `json:"tokens_per_document"`
	Paths             []string        `json:"paths"`
	TextField         string          `json:"text_field"`
	IDField           string          `json:"id_field"`
	Strict            bool            `json:"strict"`
	Exclude           []string        `json:"exclude"`
	Include           []string        `json:"include"`
	// Restore counts the restore into a vector store (estimate_restore.go).
	Restore *restoreTargetBody `json:"restore"`
}

// estimateRequest validates the body and builds the planner's request, with
// paths resolved inside the corpus roots.
func (s *Server) estimateRequest(b *estimateBody) (planner.EstimateRequest, error) {
	var req planner.EstimateRequest
	names, err := parseStringOrList("model", b.Model)
	if err != nil {
		return req, err
	}
	if len(names) == 0 {
		names = []string{pricing.DefaultModel}
	}
	models, err := s.cat.Resolve(names)
	if err != nil {
		if errors.Is(err, pricing.ErrUnknownModel) {
			return req, badRequest(CodeUnknownModel, "model", "%v", err)
		}
		return req, badRequest(CodeInvalidValue, "model", "%v", err)
	}
	if err := nonNegative(
		namedInt{"chunk_tokens", int64(intOr(b.ChunkTokens, 0))}, namedInt{"chunk_overlap", int64(intOr(b.ChunkOverlap, 0))},
		namedInt{"rpm", int64(intOr(b.RPM, 0))}, namedInt{"tpm", int64(intOr(b.TPM, 0))},
		namedInt{"concurrency", int64(intOr(b.Concurrency, 0))}, namedInt{"latency_ms", intOr(b.LatencyMS, 0)},
		namedInt{"batch_size", int64(b.BatchSize)},
	); err != nil {
		return req, err
	}
	if b.Concurrency != nil && *b.Concurrency == 0 {
		return req, badRequest(CodeInvalidValue, "concurrency", "concurrency must be at least 1")
	}
	chunk := intOr(b.ChunkTokens, planner.DefaultChunkTokens)
	overlap := intOr(b.ChunkOverlap, planner.DefaultChunkOverlap)
	if b.ChunkOverlap == nil && chunk == 0 {
		overlap = 0
	}
	latency := planner.DefaultLatency
	if b.Latency != nil && b.LatencyMS != nil {
		return req, badRequest(CodeConflict, "latency_ms", "give latency or latency_ms, not both")
	}
	if d, ok, err := parseDuration("latency", b.Latency); err != nil {
		return req, err
	} else if ok {
		latency = d
	}
	if b.LatencyMS != nil {
		latency = durationMS(*b.LatencyMS)
	}
	rto, _, err := parseDuration("rto", b.RTO)
	if err != nil {
		return req, err
	}
	if b.Sample != nil && (*b.Sample <= 0 || *b.Sample > 1 || math.IsNaN(*b.Sample)) {
		return req, badRequest(CodeInvalidValue, "sample", "sample %v must be a fraction in (0, 1], e.g. 0.05", *b.Sample)
	}
	req = planner.EstimateRequest{
		Corpus:      corpus.Options{PlainText: b.PlainText, Strict: b.Strict, TextField: b.TextField, IDField: b.IDField},
		Models:      models,
		ChunkTokens: chunk, ChunkOverlap: overlap,
		Limits: planner.Limits{RPM: intOr(b.RPM, planner.DefaultRPM), TPM: intOr(b.TPM, planner.DefaultTPM),
			Concurrency: intOr(b.Concurrency, planner.DefaultConcurrency), Latency: latency, BatchSize: b.BatchSize},
		RTO: rto,
	}
	req.Corpus.Sample, req.Corpus.Seed = intOr(b.Sample, 0), intOr(b.Seed, 1)
	if req.Corpus.Filters, err = filtersOf(b.Exclude, b.Include); err != nil {
		return req, err
	}
	if b.Documents != nil || b.TokensPerDocument != nil {
		if len(b.Paths) > 0 {
			return req, badRequest(CodeConflict, "paths", "a what-if (documents, tokens_per_document) takes no paths")
		}
		if b.Documents == nil || *b.Documents <= 0 {
			return req, badRequest(CodeInvalidValue, "documents", "documents must be a positive number of documents")
		}
		if b.TokensPerDocument == nil || *b.TokensPerDocument <= 0 {
			return req, badRequest(CodeInvalidValue, "tokens_per_document", "tokens_per_document must be a positive number of tokens")
		}
		if b.Sample != nil && *b.Sample < 1 {
			return req, badRequest(CodeConflict, "sample", "a what-if has no corpus to sample")
		}
		req.WhatIf = &planner.WhatIf{Documents: *b.Documents, TokensPerDocument: *b.TokensPerDocument}
	} else {
		if len(b.Paths) == 0 {
			return req, badRequest(CodeMissing, "paths", "give paths (inside a corpus root) or documents and tokens_per_document")
		}
		for _, p := range b.Paths {
			real, err := corpus.ResolvePath(s.roots, p)
			if err != nil {
				return req, pathError(err)
			}
			req.Paths = append(req.Paths, real)
		}
		src, err := corpus.Open(req.Paths, corpus.Options{})
		if err != nil {
			return req, badRequest(CodeInvalidValue, "paths", "%v", corpus.ClientPaths(err, req.Paths, b.Paths))
		}
		src.Close()
	}
	if err := req.Validate(); err != nil {
		return req, err // field errors: toAPIError names the first field
	}
	return req, nil
}

// filtersOf checks the exclude and include globs, naming the field.
func filtersOf(exclude, include []string) (corpus.Filters, error) {
	if err := (corpus.Filters{Exclude: exclude}).Validate(); err != nil {
		return corpus.Filters{}, badRequest(CodeInvalidValue, "exclude", "%v", err)
	}
	if err := (corpus.Filters{Include: include}).Validate(); err != nil {
		return corpus.Filters{}, badRequest(CodeInvalidValue, "include", "%v", err)
	}
	return corpus.Filters{Exclude: exclude, Include: include}, nil
}

// pathError is the answer for a corpus path that did not resolve.
func pathError(err error) *Error {
	switch {
	case errors.Is(err, corpus.ErrOutsideRoot):
		return badRequest(CodeOutsideRoot, "paths", "%v", err)
	case errors.Is(err, fs.ErrNotExist):
		return badRequest(CodePathNotFound, "paths", "%v", err)
	}
	return badRequest(CodeInvalidValue, "paths", "%v", err)
}

// postEstimate answers POST /v1/estimates with the JSON of
// `reembed estimate --format json`.
func (s *Server) postEstimate(c echo.Context) error {
	var b estimateBody
	if err := decodeBody(c, &b, false); err != nil {
		return err
	}
	req, err := s.estimateRequest(&b)
	if err != nil {
		return err
	}
	if req.Restore, err = s.restoreTarget(c.Request().Context(), b.Restore, req.Models[0].DefaultDimensions); err != nil {
		return err
	}
	est, err := planner.Run(c.Request().Context(), s.tok, req)
	// Paths shown to the client are its own, or relative to a corpus root.
	client := func(msg string) string { return corpus.ClientText(msg, req.Paths, b.Paths, s.roots) }
	if err != nil {
		if errors.Is(err, corpus.ErrSkipped) {
			return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUnreadableCorpus, Field: "paths", Message: client(err.Error()), err: err}
		}
		return err
	}
	if req.WhatIf == nil {
		est.Corpus.Roots = append([]string(nil), b.Paths...) // as the client named them, not server paths
	}
	for i := range est.Corpus.Skipped {
		est.Corpus.Skipped[i].Path = client(est.Corpus.Skipped[i].Path)
	}
	return c.JSON(http.StatusOK, est)
}

// getModels answers GET /v1/models: the pricing catalog, as
// `reembed models --format json` prints it.
func (s *Server) getModels(c echo.Context) error {
	return c.JSON(http.StatusOK, modelsResponse{CatalogVersion: s.cat.Version, Models: s.cat.Models()})
}

type modelsResponse struct {
	CatalogVersion string          `json:"catalog_version"`
	Models         []pricing.Model `json:"models"`
}
