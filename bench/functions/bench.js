// Benchmark functions for bench/runtime.sh (Kubeless signature: handler(event, context)).
module.exports = {
  hello: (event, context) => 'hello world',
  // For a JSON POST, data is the decoded object, so it is re-serialized as JSON.
  echo: (event, context) => event.data,
};
