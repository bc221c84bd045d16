//go:build tools

// Package tools pins the KEDA commands built by e2e/lib/keda.sh so that
// `go mod tidy` keeps every module they need in go.mod and go.sum.
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
