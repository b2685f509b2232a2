# reembed: a static binary in a distroless, non-root image (no shell, no package manager).
#
#   docker build -t reembed:latest --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm reembed:latest version
#
# deploy/kubernetes/README.md has the push commands. A test (cmd/reembed
# TestDockerfileBuildsStaticBinary) runs the `go build` line below and checks
# the binary is static and runs `reembed version` in an empty environment.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/reembed ./cmd/reembed

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reembed /usr/local/bin/reembed
USER nonroot:nonroot
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/reembed"]
CMD ["help"]
