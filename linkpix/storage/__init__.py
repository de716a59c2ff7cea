"""What LinkPix keeps: the image cache (`cache`, or a bucket: `s3`), uploaded inputs (`uploads`,
`s3uploads`), the shared JSON documents (`jsonstore`, `watch`), and which of them a configuration opens
(`opening`)."""
