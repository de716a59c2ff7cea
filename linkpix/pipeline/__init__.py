"""The one path every surface uses: `request` (URL/JSON -> GenerationRequest) -> `resolver` (+ `checks`,
`seeds`: -> RenderedJob against the current files) -> `generator` (cache, single-flight `flight`s over the
`backends` protocols, failover) -> stored image. `graphjob` makes a RenderedJob from a client's own graph
(the ComfyUI front)."""
