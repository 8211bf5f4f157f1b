"""affectsynth.fitting.detection: MediaPipe's face detector and face mesh, ported to torch."""

__all__: list[str] = []
