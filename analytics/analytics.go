// Package analytics owns the vocabulary of object detection (the Detector interface, its tensor input
// contract, detections, boxes, non-maximum suppression, letterboxing of still images); it never loads a
// model or touches cgo itself: implementations live in subpackages (onnx, motion) or behind a network.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"image"
	"time"
)

// ErrUnavailable marks a detector that cannot run here (no model configured, model file missing, ONNX
// Runtime library missing). Callers test it with errors.Is and fall back to the motion detector, saying
// so in status and logs.
var ErrUnavailable = errors.New("object detector unavailable")

// Detector finds objects in letterboxed frames. It is deliberately narrow so that a remote inference
// worker can stand behind it: inputs are plain float32 tensors plus geometry, results are plain values.
// Implementations may serialize calls internally; a pool runs several detectors for parallelism.
type Detector interface {
	// InputSpec is the tensor every Input must hold: callers (the codec scaler, FillImage) write frames
	// straight into a []float32 of InputSpec().Len() elements per frame.
	InputSpec() InputSpec
	// Detect runs on a batch of at most InputSpec().MaxBatch inputs (more are split) and returns one
	// Result per input, in order. Detections are in the original frame's normalized coordinates.
	Detect(ctx context.Context, inputs []Input) ([]Result, error)
	// Close releases the detector; Detect after Close returns an error.
	Close() error
}

// InputSpec describes a detector's input tensor: CHW float32, one frame of Channels x Height x Width.
type InputSpec struct {
	Width, Height int
	// Channels is 3 for colour models.
	Channels int
	// BGR is true when channel 0 is blue (OpenCV-trained models such as YOLOX), false for RGB.
	BGR bool
	// Scale multiplies 0..255 pixel values (1 for YOLOX's 0..255, 1/255 for YOLOv8's 0..1).
	Scale float32
	// Pad is the 0..255 grey value of the letterbox border (114 for the YOLO family).
	Pad float32
	// MaxBatch is how many frames one inference can take (1 unless the model has a dynamic batch axis).
	MaxBatch int
}

// Len is the number of float32 values of one frame's tensor.
func (s InputSpec) Len() int { return s.Channels * s.Width * s.Height }

// Input is one frame for a Detector: its letterboxed tensor and how the frame was placed in it.
type Input struct {
	// Tensor holds InputSpec().Len() values, CHW, filled by the caller. The detector only reads it.
	Tensor []float32
	// Letterbox maps tensor pixels back to the frame.
	Letterbox Letterbox
}

// Detection is one object in a frame.
type Detection struct {
	// Class is the index in the detector's class list; Label its name.
	Class int
	Label string
	// Score is the confidence, 0..1 (objectness x class probability for YOLOX).
	Score float32
	// Box is normalized to the original frame.
	Box Box
}

// Result is what a Detector found in one Input.
type Result struct {
	Detections []Detection
	// Inference is the time of the model run this input took part in (the whole batch's run).
	Inference time.Duration
}

// DetectImage letterboxes img into a fresh tensor and runs d on it: the convenience path for still
// images and tests (live frames come letterboxed from the codec scaler).
func DetectImage(ctx context.Context, d Detector, img image.Image) (Result, error) {
	spec := d.InputSpec()
	buf := make([]float32, spec.Len())
	lb, err := FillImage(img, spec, buf)
	if err != nil {
		return Result{}, err
	}
	res, err := d.Detect(ctx, []Input{{Tensor: buf, Letterbox: lb}})
	if err != nil {
		return Result{}, err
	}
	if len(res) != 1 {
		return Result{}, fmt.Errorf("detect image: detector returned %d results for 1 input", len(res))
	}
	return res[0], nil
}
