package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// ONNXLibraryEnv names the environment variable that points tests at ONNX Runtime's shared library
// (`make onnxruntime` fetches it; the Makefile exports the path for `make test`).
const ONNXLibraryEnv = "SIGHTLINE_ONNX_LIBRARY"

// ONNXLibraryRel is where `make onnxruntime` puts the library, relative to the repository root.
const ONNXLibraryRel = "var/onnxruntime/onnxruntime-node-1.24.3/libonnxruntime.so.1"

// ONNXLibrary returns the absolute path of libonnxruntime.so.1: $SIGHTLINE_ONNX_LIBRARY when set, else
// the copy `make onnxruntime` left under var/onnxruntime/; it marks the test unavailable when neither exists.
func ONNXLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv(ONNXLibraryEnv)
	if p == "" {
		p = filepath.Join(RepoRoot(), ONNXLibraryRel)
	}
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "ONNX Runtime library not found at "+p+" (run `make onnxruntime` or set "+ONNXLibraryEnv+")")
	}
	abs, _ := filepath.Abs(p)
	return abs
}
