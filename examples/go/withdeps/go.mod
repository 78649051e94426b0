module function

go 1.14

require github.com/sirupsen/logrus v1.9.3
