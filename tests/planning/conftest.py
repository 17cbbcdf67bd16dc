"""Make the local builders module importable (pytest does not put test dirs on sys.path here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
