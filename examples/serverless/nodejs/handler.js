// hello: greets what it is sent, capitalised by a dependency (package.json: lodash).
const _ = require('lodash');

module.exports = {
  hello: (event, context) => {
    const name = _.upperFirst(_.trim(typeof event.data === 'string' ? event.data : '')) || 'World';
    console.log(`${context['function-name']} greets ${JSON.stringify(name)}`);
    return `Hello, ${name}!`;
  },
};
