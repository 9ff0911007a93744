#include "tests.h"
TEST(placeholder)
{
}
