"""The wire between the board and the Pi: protocol codec, serial link, board
simulator, and the microcontroller firmware sources (``firmware/``)."""
