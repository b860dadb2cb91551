#pragma once
#include <keel/core/batch.hpp>
#include <keel/core/clock.hpp>
#include <keel/core/content_id.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/request.hpp>
#include <keel/core/result.hpp>
#include <keel/core/status.hpp>
