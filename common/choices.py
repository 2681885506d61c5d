"""The choice lists the settings offer and the stages act on, declared once. Plain Python: the
settings (read at ComfyUI's start) and the stages (torch, OpenCV) both take them from here."""

MODES = ("sequential", "repetitive", "pingpong")
FACE_CHOICES = ("largest", "left-most", "right-most", "marked")
SILENCE_CHOICES = ("generate", "keep_original")
SOUND_CHOICES = ("speech", "video")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
