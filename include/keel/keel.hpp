#pragma once
// Umbrella header: everything a host application needs to embed Keel.
#include <keel/version.hpp>
#include <keel/core/core.hpp>
#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>
#include <keel/model/loaders.hpp>
