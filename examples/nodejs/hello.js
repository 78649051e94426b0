// The Node.js twin of examples/python/hello.py: `FUNCTION=examples/nodejs/hello.js scripts/up`.
module.exports = {
  hello: (event, context) => {
    if (!event.data) return 'hello world';
    return { 'you-sent': event.data, 'event-id': event['event-id'], function: context['function-name'] };
  },
};
