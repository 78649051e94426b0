// A function with a dependency (package.json): lodash, as Kubeless's hellowithdeps.js did.
const _ = require('lodash');

module.exports = {
  handler: (event) => _.assign({}, typeof event.data === 'object' ? event.data : { data: event.data }, { date: new Date().toUTCString() }),
};
