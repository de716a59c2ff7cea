"""What LinkPix keeps: the image cache, the shared JSON documents, image encoding."""
