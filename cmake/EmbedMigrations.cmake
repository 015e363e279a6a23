# Turns adapters/pg/migrations/NNNN_name.sql into a C table compiled into
# the binary (generated/tf_migrations_data.c), in file-name order.
file(GLOB TF_MIGRATION_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/adapters/pg/migrations/*.sql)
list(SORT TF_MIGRATION_FILES)
set(TF_MIGRATIONS_C ${CMAKE_BINARY_DIR}/generated/tf_migrations_data.c)
add_custom_command(
  OUTPUT ${TF_MIGRATIONS_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${TF_MIGRATIONS_C} -DDIR=${CMAKE_SOURCE_DIR}/adapters/pg/migrations
          -P ${CMAKE_SOURCE_DIR}/cmake/embed_migrations.cmake
  DEPENDS ${TF_MIGRATION_FILES} ${CMAKE_SOURCE_DIR}/cmake/embed_migrations.cmake
  COMMENT "Embedding SQL migrations")
add_custom_target(tf_migrations_gen DEPENDS ${TF_MIGRATIONS_C})
target_sources(tf_pg PRIVATE ${TF_MIGRATIONS_C})
target_include_directories(tf_pg PUBLIC ${CMAKE_SOURCE_DIR})
add_dependencies(tf_pg tf_migrations_gen)
