{#- The lower bound of an incremental run: the newest value of `column`
    already in this model, less the lookback (var lookback_hours). A model
    that is still empty gets '-infinity', so its first run reads everything. -#}
{% macro incremental_cutoff(column) -%}
    (select coalesce(max({{ column }}), '-infinity') - interval '{{ var("lookback_hours") }} hours' from {{ this }})
{%- endmacro %}
