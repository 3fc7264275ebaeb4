// Package e2e holds end-to-end tests: the whole gateway, started through its Go API, played by a real
// headless Chromium inside a loopback-only network namespace. It ships no code, only tests.
package e2e

import (
	"os"
	"testing"

	"sightline/internal/browsertest"
)

func TestMain(m *testing.M) { os.Exit(browsertest.IsolateNetwork(m)) }
