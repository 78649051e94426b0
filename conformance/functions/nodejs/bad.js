'use strict';
// A module that fails to load (it throws at require), for the load-failure case.

throw new Error('bad module: this file throws when required');
