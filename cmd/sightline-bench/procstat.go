package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns utime+stime of process pid (0: this process) from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse %s: no command name", path)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse %s: %d fields", path, len(f))
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse %s: utime/stime", path)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// rssBytes returns VmRSS of process pid (0: this process) from /proc/<pid>/status.
func rssBytes(pid int) (uint64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse VmRSS: %w", err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in %s", path)
}

// cpuMeter measures CPU use of a process between start and stop as % of one core.
type cpuMeter struct {
	pid   int
	cpu0  time.Duration
	wall0 time.Time
}

func startCPU(pid int) cpuMeter {
	c, _ := cpuTime(pid)
	return cpuMeter{pid: pid, cpu0: c, wall0: time.Now()}
}

func (m cpuMeter) percent() float64 {
	c, err := cpuTime(m.pid)
	if err != nil {
		return -1
	}
	wall := time.Since(m.wall0)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(c-m.cpu0) / float64(wall)
}

// machineBusy returns the busy and total CPU time of the whole machine (all cores) from /proc/stat, in
// clock ticks: busy is everything but idle and iowait.
func machineBusy() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("parse /proc/stat: %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// machineMeter measures the whole machine's CPU use (every process, ours and others') as % of one core.
type machineMeter struct {
	busy0 uint64
	wall0 time.Time
}

func startMachine() machineMeter {
	b, _, _ := machineBusy()
	return machineMeter{busy0: b, wall0: time.Now()}
}

func (m machineMeter) percent() float64 {
	b, _, err := machineBusy()
	wall := time.Since(m.wall0)
	if err != nil || wall <= 0 {
		return -1
	}
	return 100 * float64(b-m.busy0) / clockTicks / wall.Seconds()
}

// udpCounters returns the machine's UDP counters from /proc/net/snmp (InErrors, RcvbufErrors, ...).
func udpCounters() map[string]int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return nil
	}
	var rows [][]string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Udp:") {
			rows = append(rows, strings.Fields(line)[1:])
		}
	}
	if len(rows) < 2 || len(rows[0]) != len(rows[1]) {
		return nil
	}
	out := make(map[string]int64, len(rows[0]))
	for i, k := range rows[0] {
		v, _ := strconv.ParseInt(rows[1][i], 10, 64)
		out[k] = v
	}
	return out
}

// loadAverage returns /proc/loadavg's first three fields ("" where unreadable).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
