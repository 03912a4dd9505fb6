"""The fire post's and the SAPA desk's board: its pages, its JSON API and its live stream."""
