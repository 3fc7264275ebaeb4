package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// runtimeState is what the API changed since the config file: kept beside it (api.stateFile) and laid
// over the file's cameras at start. It holds camera credentials, so it is written 0600.
type runtimeState struct {
	Version int `json:"version"`
	// Cameras created or changed through the API (they replace a config camera with the same id).
	Cameras []CameraConfig `json:"cameras,omitempty"`
	// Deleted are config-file cameras deleted through the API.
	Deleted []string `json:"deleted,omitempty"`
	// Stopped are cameras an operator stopped.
	Stopped []string `json:"stopped,omitempty"`
}

const stateVersion = 1

// loadState reads the state file; a missing file is an empty state.
func loadState(path string) (*runtimeState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &runtimeState{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	var st runtimeState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return &st, nil
}

// apply lays the state over the config file's cameras and validates the result.
func (st *runtimeState) apply(cfg *Config) ([]CameraConfig, error) {
	var out []CameraConfig
	for _, c := range cfg.Cameras {
		if !slices.Contains(st.Deleted, c.ID) && !slices.ContainsFunc(st.Cameras, func(o CameraConfig) bool { return o.ID == c.ID }) {
			out = append(out, c)
		}
	}
	for i, c := range st.Cameras {
		c = withCameraDefaults(c)
		if err := cfg.validateCamera(&c, fmt.Sprintf("cameras[%d].", i)); err != nil {
			return nil, fmt.Errorf("state file camera: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// withCameraDefaults fills what the config file would have defaulted.
func withCameraDefaults(c CameraConfig) CameraConfig {
	if c.Transport == "" {
		c.Transport = "auto"
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = Duration(defaultReadTimeout)
	}
	return c
}

// clone returns a deep copy to change before saving.
func (st *runtimeState) clone() *runtimeState {
	return &runtimeState{Version: stateVersion, Cameras: slices.Clone(st.Cameras),
		Deleted: slices.Clone(st.Deleted), Stopped: slices.Clone(st.Stopped)}
}

// upsert records a created or changed camera.
func (st *runtimeState) upsert(c CameraConfig) {
	st.Deleted = slices.DeleteFunc(st.Deleted, func(s string) bool { return s == c.ID })
	if i := slices.IndexFunc(st.Cameras, func(o CameraConfig) bool { return o.ID == c.ID }); i >= 0 {
		st.Cameras[i] = c
		return
	}
	st.Cameras = append(st.Cameras, c)
}

// remove records a deleted camera; inFile says whether the config file has it.
func (st *runtimeState) remove(id string, inFile bool) {
	st.Cameras = slices.DeleteFunc(st.Cameras, func(o CameraConfig) bool { return o.ID == id })
	st.Stopped = slices.DeleteFunc(st.Stopped, func(s string) bool { return s == id })
	if inFile && !slices.Contains(st.Deleted, id) {
		st.Deleted = append(st.Deleted, id)
	}
}

func (st *runtimeState) setStopped(id string, stopped bool) {
	st.Stopped = slices.DeleteFunc(st.Stopped, func(s string) bool { return s == id })
	if stopped {
		st.Stopped = append(st.Stopped, id)
	}
}

// save writes the state atomically: a temporary file in the same folder, synced, then renamed over
// the old one, so a crash leaves either the old or the new state, never half of one.
func (st *runtimeState) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
