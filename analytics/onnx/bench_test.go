package onnx

import (
	"context"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"sightline/analytics"
	"sightline/internal/testenv"
)

// BenchmarkDetectorVsBareRun measures Detect (tensor in, decoded and NMS'd detections out) beside a bare
// AdvancedSession.Run loop on the same model, input and session settings, interleaved in the same run.
// Metrics: ms per bare run, ms per Detect, and their throughput ratio (goal >= 0.90); image_ratio adds the
// pure-Go letterbox of a decoded JPEG (the still-image path; live frames come letterboxed from codec).
func BenchmarkDetectorVsBareRun(b *testing.B) {
	d := newTestDetector(b, Config{ScoreThreshold: 0.3})
	img := loadImage(b, "images/bus.jpg")
	spec := d.InputSpec()
	buf := make([]float32, spec.Len())
	lb, err := analytics.FillImage(img, spec, buf)
	if err != nil {
		b.Fatal(err)
	}
	bareIn, err := ort.NewTensor(ort.NewShape(1, 3, int64(spec.Height), int64(spec.Width)), append([]float32(nil), buf...))
	if err != nil {
		b.Fatal(err)
	}
	defer bareIn.Destroy()
	bareOut, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3549, 85))
	if err != nil {
		b.Fatal(err)
	}
	defer bareOut.Destroy()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	bare, err := ort.NewAdvancedSession(testenv.Asset(b, "models/yolox_nano.onnx"), []string{"images"}, []string{"output"},
		[]ort.Value{bareIn}, []ort.Value{bareOut}, opts)
	opts.Destroy()
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Destroy()
	ctx := context.Background()
	in := []analytics.Input{{Tensor: buf, Letterbox: lb}}
	for range 3 { // warm both
		bare.Run()
		d.Detect(ctx, in)
	}
	var tBare, tDet, tImg time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := bare.Run(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := d.Detect(ctx, in); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := analytics.DetectImage(ctx, d, img); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tBare, tDet, tImg = tBare+t1.Sub(t0), tDet+t2.Sub(t1), tImg+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(tBare.Seconds()*1000/n, "bare_ms")
	b.ReportMetric(tDet.Seconds()*1000/n, "detect_ms")
	b.ReportMetric(tImg.Seconds()*1000/n, "image_ms")
	b.ReportMetric(tBare.Seconds()/tDet.Seconds(), "ratio")
	b.ReportMetric(tBare.Seconds()/tImg.Seconds(), "image_ratio")
}
