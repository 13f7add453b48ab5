"""eegmusic: offline_training package."""
