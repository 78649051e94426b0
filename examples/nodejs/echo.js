// Echoes the event back as JSON: what a Kelp function sees of a request (Node.js).
module.exports = {
  handler: (event, context) => {
    const request = event.extensions.request;
    console.log('event', event['event-id'], event['event-namespace'], request.method, request.path);
    return {
      data: event.data,
      'event-id': event['event-id'],
      'event-type': event['event-type'],
      'event-namespace': event['event-namespace'],
      method: request.method,
      path: request.path,
      query: request.query,
      function: context['function-name'],
    };
  },
};
